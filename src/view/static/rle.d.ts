// Types for rle.js, which the browser loads as is and the tests import.
export function countsFromString(s: string): number[];
export function decodeRle(rle: { size: [number, number]; counts: string | number[] }): { height: number; width: number; data: Uint8Array };
export function paintRle(rle: { size: [number, number]; counts: string | number[] }, rgba: Uint8ClampedArray, W: number, H: number, color: [number, number, number, number]): void;

// casl view, the page: a paged grid of images with their instances drawn on
// canvases over the thumbnails, a δ slider that redraws at once (the page's
// instances are here; the counts over the whole file come from the server's
// index), filters, and an image view listing every instance's score.
// State lives in the URL hash (#delta=0.5&filter=all&page=0), so a view can
// be reloaded or shared.
import { paintRle } from './rle.js';

const $ = (id) => document.getElementById(id);
const state = { delta: 0.5, filter: 'all', page: 0, pages: 1, items: [], info: null, detail: -1 };
let countsAbort = null;
let pageAbort = null;
let reloadTimer = 0;
let redrawPending = false;

const PALETTE = ['#ff3b30', '#34c759', '#0a84ff', '#ffd60a', '#bf5af2', '#ff9f0a', '#64d2ff', '#ff375f', '#30d158', '#5e5ce6'];
const colorOf = (j) => PALETTE[j % PALETTE.length];
const fmtScore = (s) => s.toFixed(3);

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  const d = Number(h.get('delta'));
  if (h.has('delta') && Number.isFinite(d)) state.delta = d;
  if (h.get('filter')) state.filter = h.get('filter');
  const p = Number(h.get('page'));
  if (Number.isInteger(p) && p >= 0) state.page = p;
}

function writeHash() {
  history.replaceState(null, '', `#delta=${state.delta}&filter=${state.filter}&page=${state.page}`);
}

async function getJson(url, signal) {
  const res = await fetch(url, { signal });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `${res.status} ${url}`);
  return body;
}

async function loadCounts() {
  countsAbort?.abort();
  countsAbort = new AbortController();
  const delta = state.delta;
  try {
    const c = await getJson(`/api/counts?delta=${delta}`, countsAbort.signal);
    $('count-instances-kept').textContent = c.instancesKept;
    $('count-instances').textContent = c.instances;
    $('count-images-kept').textContent = c.imagesKept;
    $('count-images').textContent = c.images;
    $('count-dropped').textContent = c.imagesDropped;
    $('count-errors').textContent = c.errors;
    // Lets a reader (and the tests) know which δ the numbers are for.
    $('counts').dataset.delta = String(c.delta);
    $('status').textContent = '';
    // Counts come once the index is built: then the histogram and the totals are known too.
    if (state.info?.indexing) await showInfo();
  } catch (e) {
    if (e.name !== 'AbortError') $('status').textContent = `counts failed: ${e.message}`;
  }
}

async function loadPage() {
  pageAbort?.abort();
  pageAbort = new AbortController();
  const q = `delta=${state.delta}&filter=${state.filter}&page=${state.page}`;
  try {
    const p = await getJson(`/api/page?${q}`, pageAbort.signal);
    state.items = p.items;
    state.page = p.page;
    state.pages = p.pages;
    // While the server indexes a large file, the number of pages is not known yet.
    $('page-label').textContent = p.pages === null ? `page ${p.page + 1} · indexing…`
      : `page ${p.page + 1} / ${p.pages} · ${p.total} in this view`;
    $('prev').disabled = p.page === 0;
    $('next').disabled = p.pages === null ? p.items.length < state.info?.pageSize : p.page >= p.pages - 1;
    renderGrid();
    writeHash();
  } catch (e) {
    if (e.name !== 'AbortError') $('grid').textContent = `loading the page failed: ${e.message}`;
  }
}

function renderGrid() {
  const grid = $('grid');
  grid.replaceChildren();
  for (const item of state.items) {
    const tile = document.createElement('figure');
    tile.className = 'tile';
    tile.dataset.index = item.index;
    const caption = document.createElement('figcaption');
    caption.className = 'caption';
    if (item.error) {
      tile.classList.add('error');
      const msg = document.createElement('div');
      msg.className = 'message';
      msg.textContent = item.error;
      tile.append(msg);
      caption.textContent = `line ${item.line}${item.file_name ? ` · ${item.file_name}` : ''}`;
      tile.append(caption);
      grid.append(tile);
      continue;
    }
    const stage = document.createElement('div');
    stage.className = 'stage';
    const img = document.createElement('img');
    img.alt = item.file_name;
    img.decoding = 'async';
    const canvas = document.createElement('canvas');
    img.addEventListener('load', () => {
      tile.dataset.loaded = '1';
      drawTile(tile, item);
    });
    img.addEventListener('error', () => {
      // The server's reason is in its response; the record itself is fine.
      item.error = `cannot load the image of ${item.file_name}`;
      tile.classList.add('error');
      caption.textContent = item.error;
    });
    img.src = item.thumb;
    stage.append(img, canvas);
    caption.title = item.file_name;
    tile.append(stage, caption);
    tile.addEventListener('click', () => openDetail(state.items.indexOf(item)));
    grid.append(tile);
    updateCaption(tile, item);
  }
}

/** Instances above δ, for this item. */
const keptCount = (item) => item.instances.filter((i) => i.score > state.delta).length;

function updateCaption(tile, item) {
  const kept = keptCount(item);
  tile.classList.toggle('dropped', kept === 0);
  tile.dataset.kept = kept;
  const caption = tile.querySelector('.caption');
  const recall = item.gtMatch ? ` · recall ${(100 * recallAt(item)).toFixed(0)}%` : '';
  caption.innerHTML = '';
  const b = document.createElement('b');
  b.textContent = `${kept}/${item.instances.length}`;
  caption.append(b, ` · ${item.file_name}${recall}`);
}

// The server sends, per GT box, the score of the prediction matched to it
// (IoU ≥ 0.5, greedy by score), so recall at any δ is a count made here.
const recallAt = (item) => item.gtMatch.filter((s) => s !== null && s > state.delta).length / item.gtMatch.length;

const rgbOf = (color) => [1, 3, 5].map((k) => parseInt(color.slice(k, k + 2), 16));

/**
 * Draws `item`'s instances on `canvas`, sized to `img` as displayed. Boxes
 * scoring > δ are solid, the rest dashed grey when asked for; GT dashed white.
 */
function drawInstances(canvas, img, item, highlight = -1) {
  const w = img.clientWidth;
  const h = img.clientHeight;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const sx = w / item.width;
  const sy = h / item.height;
  const showBelow = $('show-below').checked;
  // Masks first, painted straight into one layer at the canvas' own
  // resolution (no per-instance bitmaps: a page can hold thousands of masks).
  if ($('show-masks').checked) {
    const layer = ctx.createImageData(canvas.width, canvas.height);
    const order = item.instances.map((_, j) => j).filter((j) => item.instances[j].segmentation && item.instances[j].score > state.delta);
    // The highlighted one last, so it is on top.
    order.sort((a, b) => (a === highlight) - (b === highlight));
    for (const j of order) {
      try {
        paintRle(item.instances[j].segmentation, layer.data, canvas.width, canvas.height, [...rgbOf(colorOf(j)), j === highlight ? 160 : 100]);
      } catch (e) {
        console.warn(`mask of instance ${j} of ${item.file_name}: ${e.message}`);
      }
    }
    if (order.length > 0) ctx.putImageData(layer, 0, 0);
  }
  if ($('show-gt').checked && item.gt) {
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = '#ffffff';
    ctx.lineWidth = 1;
    for (const [x, y, bw, bh] of item.gt) ctx.strokeRect(x * sx, y * sy, bw * sx, bh * sy);
  }
  item.instances.forEach((inst, j) => {
    const kept = inst.score > state.delta;
    if (!kept && !showBelow && j !== highlight) return;
    const color = kept ? colorOf(j) : '#8e8e93';
    ctx.setLineDash(kept ? [] : [3, 3]);
    ctx.strokeStyle = color;
    ctx.lineWidth = j === highlight ? 3 : 2;
    const [x, y, bw, bh] = inst.bbox;
    ctx.strokeRect(x * sx, y * sy, bw * sx, bh * sy);
  });
  ctx.setLineDash([]);
}

function drawTile(tile, item) {
  const img = tile.querySelector('img');
  if (!img || !img.complete || !img.naturalWidth) return;
  drawInstances(tile.querySelector('canvas'), img, item);
  updateCaption(tile, item);
}

function redrawAll() {
  for (const tile of $('grid').children) {
    const item = state.items.find((it) => String(it.index) === tile.dataset.index);
    if (item && !item.error) drawTile(tile, item);
  }
  if (state.detail >= 0) renderDetail();
}

/**
 * Under the slider: instances by score (bars, square-root scale so the tail
 * shows) and the images kept at each δ (line), with δ marked: where the
 * threshold cuts, at a glance.
 */
function drawProfile() {
  const p = state.info?.profile;
  const c = $('profile');
  if (!p) return;
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth;
  const h = c.clientHeight;
  c.width = Math.round(w * dpr);
  c.height = Math.round(h * dpr);
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const n = p.instances.length;
  const top = Math.sqrt(Math.max(1, ...p.instances));
  ctx.fillStyle = '#5e6673';
  p.instances.forEach((v, k) => {
    const bh = (Math.sqrt(v) / top) * (h - 2);
    ctx.fillRect((k / n) * w, h - bh, Math.max(1, w / n - 0.5), bh);
  });
  const images = Math.max(1, p.imagesKept[0]);
  ctx.strokeStyle = '#64d2ff';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  p.imagesKept.forEach((v, k) => {
    const x = (k / n) * w;
    const y = h - 1 - (v / images) * (h - 2);
    if (k === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.strokeStyle = '#ffffff';
  ctx.beginPath();
  const x = Math.min(1, Math.max(0, state.delta)) * w;
  ctx.moveTo(x, 0);
  ctx.lineTo(x, h);
  ctx.stroke();
}

function setDelta(d, { immediate = false } = {}) {
  if (!Number.isFinite(d)) return;
  state.delta = d;
  $('delta').value = String(d);
  if (document.activeElement !== $('delta-number')) $('delta-number').value = String(d);
  for (const tile of $('grid').children) {
    const item = state.items.find((it) => String(it.index) === tile.dataset.index);
    if (item && !item.error) updateCaption(tile, item);
  }
  if (!redrawPending) {
    redrawPending = true;
    // Dragging fires input events faster than frames: draw once per frame.
    requestAnimationFrame(() => {
      redrawPending = false;
      redrawAll();
      drawProfile();
    });
  }
  loadCounts();
  // The order of these filters depends on δ: fetch the page again once the slider rests.
  if (state.filter !== 'all' && state.filter !== 'errors') {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(loadPage, immediate ? 0 : 250);
  } else {
    writeHash();
  }
}

// ---- the image view

async function openDetail(k) {
  if (k < 0 || k >= state.items.length) return;
  const item = state.items[k];
  if (item.error) return;
  state.detail = k;
  $('detail').hidden = false;
  $('detail-title').textContent = `${item.file_name} · image_id ${item.image_id ?? '—'} · line ${item.line}`;
  const img = $('detail-img');
  // Fit the stage, enlarging small images too: boxes of a 200-px image need room.
  const fit = Math.min((0.62 * innerWidth) / item.width, (0.86 * innerHeight) / item.height);
  img.style.width = `${Math.round(item.width * fit)}px`;
  img.style.height = `${Math.round(item.height * fit)}px`;
  img.onload = () => drawDetail(-1);
  img.src = item.thumb.replace('/thumb/', '/image/');
  renderDetail();
}

function drawDetail(highlight) {
  const item = state.items[state.detail];
  const img = $('detail-img');
  if (item && img.complete && img.naturalWidth) drawInstances($('detail-canvas'), img, item, highlight);
}

/** The image view's summary and its table of every instance, by descending score. */
function renderDetail() {
  const item = state.items[state.detail];
  if (!item) return;
  drawDetail(-1);
  const kept = keptCount(item);
  const gt = item.gtMatch ? ` · ${item.gtMatch.length} GT boxes, recall at δ ${(100 * recallAt(item)).toFixed(0)}%` : '';
  $('detail-summary').textContent = `${kept} of ${item.instances.length} instances score > δ = ${state.delta}${gt}`;
  const body = $('detail-table').tBodies[0];
  body.replaceChildren();
  const order = item.instances.map((_, j) => j).sort((a, b) => item.instances[b].score - item.instances[a].score);
  for (const j of order) {
    const inst = item.instances[j];
    const tr = document.createElement('tr');
    if (!(inst.score > state.delta)) tr.className = 'below';
    const name = state.info.categories[inst.category_id];
    const cells = [String(j), fmtScore(inst.score), inst.score > state.delta ? '✓' : '', name ? `${inst.category_id} ${name}` : String(inst.category_id ?? ''),
      inst.bbox.map((v) => v.toFixed(1)).join(', '), inst.segmentation ? 'RLE' : ''];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    tr.firstChild.style.color = colorOf(j);
    tr.addEventListener('mouseenter', () => {
      tr.classList.add('hot');
      drawDetail(j);
    });
    tr.addEventListener('mouseleave', () => {
      tr.classList.remove('hot');
      drawDetail(-1);
    });
    body.append(tr);
  }
}

function closeDetail() {
  state.detail = -1;
  $('detail').hidden = true;
}

// ---- wiring

/** The file's description (and, once indexed, its totals and score histogram) in the header. */
async function showInfo() {
  state.info = await getJson('/api/info');
  const i = state.info;
  $('file').textContent = i.indexing ? `${i.file} · indexing…` : `${i.file} · ${i.records} records`;
  document.title = `casl view · ${i.file}`;
  if (i.meta) {
    // Below the δ the file was written with, the slider shows nothing new.
    $('meta').textContent = Object.entries(i.meta).filter(([, v]) => typeof v !== 'object').map(([k, v]) => `${k} ${v}`).join(' · ');
  }
  drawProfile();
  if (!i.indexing && state.filter === 'all' && state.items.length > 0) {
    const pages = Math.max(1, Math.ceil(i.records / i.pageSize));
    $('page-label').textContent = `page ${state.page + 1} / ${pages} · ${i.records} in this view`;
    $('next').disabled = state.page >= pages - 1;
  }
}

async function main() {
  readHash();
  // The first page does not wait for /api/info (one round trip less before
  // thumbnails start), except for the recall filter, which needs --gt.
  const first = state.filter === 'recall' ? null : Promise.all([loadCounts(), loadPage()]);
  await showInfo();

  const recallOption = $('filter').querySelector('option[value="recall"]');
  if (!state.info.gt) {
    recallOption.disabled = true;
    recallOption.textContent += ' (start with --gt)';
    if (state.filter === 'recall') state.filter = 'all';
  }
  $('filter').value = state.filter;
  $('delta').value = String(state.delta);
  $('delta-number').value = String(state.delta);

  $('delta').addEventListener('input', () => setDelta(Number($('delta').value)));
  $('delta-number').addEventListener('change', () => setDelta(Number($('delta-number').value), { immediate: true }));
  $('filter').addEventListener('change', () => {
    state.filter = $('filter').value;
    state.page = 0;
    loadPage();
  });
  for (const id of ['show-below', 'show-masks', 'show-gt']) $(id).addEventListener('change', redrawAll);
  $('prev').addEventListener('click', () => { state.page -= 1; loadPage(); });
  $('next').addEventListener('click', () => { state.page += 1; loadPage(); });
  $('detail-close').addEventListener('click', closeDetail);
  $('detail').addEventListener('click', (e) => { if (e.target === $('detail')) closeDetail(); });
  document.addEventListener('keydown', (e) => {
    if (state.detail >= 0) {
      if (e.key === 'Escape') closeDetail();
      if (e.key === 'ArrowRight') openDetail(state.detail + 1);
      if (e.key === 'ArrowLeft') openDetail(state.detail - 1);
    } else if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) {
      // Arrow keys move the slider or the selection there, not the page.
    } else if (e.key === 'ArrowRight' && !$('next').disabled) $('next').click();
    else if (e.key === 'ArrowLeft' && !$('prev').disabled) $('prev').click();
  });
  window.addEventListener('resize', redrawAll);
  drawProfile();
  await (first ?? Promise.all([loadCounts(), loadPage()]));
}

main().catch((e) => {
  document.body.textContent = `casl view failed to start: ${e.message}`;
});

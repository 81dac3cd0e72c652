// The worker side of loader-thread.ts: opens the source again from its spec
// and serves the loader's batches one pull at a time.
import _ from 'highland';
import { parentPort } from 'node:worker_threads';
import { isErrorRecord } from '../records.js';
import type { OrError, Stream } from '../streams/stage.js';
import { type TrainBatch, trainBatches } from './loader.js';
import { type FromLoader, type ToLoader, batchBuffers } from './loader-thread.js';
import { openSource } from './source.js';

if (!parentPort) throw new Error('src/train/loader-thread-worker is a worker_threads script, started by trainBatchesInThread');
const port = parentPort;

let batches: Promise<Stream<OrError<TrainBatch>>> | undefined;
// Pulls are served in order, one at a time: a highland stream takes one pull at once.
let queue: Promise<void> = Promise.resolve();

function pullOne(s: Stream<OrError<TrainBatch>>): Promise<FromLoader> {
  return new Promise((resolve) => {
    s.pull((err, x) => {
      if (err) resolve({ type: 'error', message: err.message });
      else if (_.isNil(x)) resolve({ type: 'end' });
      else resolve({ type: 'item', item: x as OrError<TrainBatch> });
    });
  });
}

port.on('message', (m: ToLoader) => {
  if (m.type === 'start') {
    batches = Promise.resolve(openSource(m.spec)).then((source) => trainBatches(source, m.opts));
    return;
  }
  queue = queue.then(async () => {
    let reply: FromLoader;
    try {
      reply = await pullOne(await batches!);
    } catch (e) {
      reply = { type: 'error', message: (e as Error).message };
    }
    const transfer = reply.type === 'item' && !isErrorRecord(reply.item) ? batchBuffers(reply.item) : [];
    port.postMessage(reply, transfer);
  });
});

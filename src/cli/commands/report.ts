// `casl report`: the experiment's report (OUT/report.md, OUT/figures/*.svg, OUT/gallery/).
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { writeReport } from '../../experiment/report.js';

export const command: Command = {
  name: 'report',
  summary: 'write the CA-SSL experiment report: table, training curves, AP bars (SVG, vega-lite), pseudo-label gallery',
  usage: 'casl report [--dir runs/ca-ssl] [--gallery N]',
  example: 'casl report --dir runs/ca-ssl',
  options: {
    dir: { type: 'string', help: 'the experiment directory of casl experiment', default: 'runs/ca-ssl' },
    gallery: { type: 'integer', help: 'unlabeled images in the gallery, per δ', default: 4 },
  },
  async run(opts, positionals, ctx) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}': casl report takes only options`);
    try {
      const file = await writeReport({ dir: opts.dir as string, galleryLimit: opts.gallery as number, log: (l) => ctx.stderr.write(`casl report: ${l}\n`) });
      ctx.stderr.write(`casl report: wrote ${file}\n`);
      return 0;
    } catch (e) {
      if ((e as Error).message.includes('run casl experiment')) throw new UsageError((e as Error).message);
      throw e;
    }
  },
};

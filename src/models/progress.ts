/**
 * Download progress: a bar redrawn in place on a TTY (stderr), and log lines every 10% (or every
 * 15 s) otherwise, so container logs show progress without control characters.
 */
import type { Logger } from 'pino';

export interface Progress {
  update(received: number): void;
  done(): void;
}

const MB = 1024 * 1024;

export function createProgress(label: string, total: number | undefined, logger: Logger, stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = Date.now();
  let lastLogged = 0;
  let lastPercent = -10;
  const rate = (received: number) => received / MB / Math.max(0.001, (Date.now() - started) / 1000);
  if (stream.isTTY) {
    return {
      update(received) {
        const fraction = total ? Math.min(1, received / total) : 0;
        const width = 30;
        const bar = total ? '#'.repeat(Math.round(fraction * width)).padEnd(width, '.') : '?'.repeat(width);
        const size = total ? `${(received / MB).toFixed(1)}/${(total / MB).toFixed(1)} MB` : `${(received / MB).toFixed(1)} MB`;
        stream.write(`\r${label} [${bar}] ${total ? `${Math.floor(fraction * 100)}%` : ''} ${size} ${rate(received).toFixed(1)} MB/s   `);
      },
      done() {
        stream.write('\n');
      },
    };
  }
  return {
    update(received) {
      const percent = total ? Math.floor((received / total) * 100) : 0;
      const now = Date.now();
      if ((total && percent >= lastPercent + 10) || now - lastLogged >= 15_000) {
        lastPercent = percent - (percent % 10);
        lastLogged = now;
        logger.info({ model: label, received_mb: +(received / MB).toFixed(1), total_mb: total ? +(total / MB).toFixed(1) : null, percent: total ? percent : null, mb_per_s: +rate(received).toFixed(1) }, 'model download progress');
      }
    },
    done() {
      logger.info({ model: label, seconds: (Date.now() - started) / 1000 }, 'model download complete');
    },
  };
}

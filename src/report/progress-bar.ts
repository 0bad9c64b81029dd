import { formatNumber } from './text-table.js';

/**
 * A one-line progress bar on a terminal (bytes, rows/s, ETA), redrawn at most every 100 ms.
 * It draws nothing when the stream is not a TTY, so piped output stays clean.
 */
export class ProgressBar {
  private lastDraw = 0;
  private started = Date.now();
  private drawn = false;
  private ticking: NodeJS.Timeout | undefined;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  get enabled(): boolean {
    return Boolean(this.stream.isTTY);
  }

  update(label: string, done: number, total: number, rows: number, unit: 'bytes' | 'rows' = 'bytes'): void {
    if (!this.enabled) return;
    this.stopTicking();
    const now = Date.now();
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    const width = 24;
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(fraction * width);
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? Math.round(rows / seconds) : 0;
    const eta = fraction > 0 && fraction < 1 ? Math.round((seconds / fraction) * (1 - fraction)) : 0;
    const amount =
      unit === 'bytes' ? `${mb(done)}/${mb(total)} MB` : `${formatNumber(done)}/${formatNumber(total)} rows`;
    const text = `${label.padEnd(9)} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${amount}  ${formatNumber(rate)} rows/s  ETA ${eta}s`;
    this.stream.write(`\r${text.slice(0, (this.stream.columns ?? 120) - 1)}\x1b[K`);
    this.drawn = true;
  }

  /**
   * A step whose rows cannot be counted as it goes (one SQL statement): what it is doing and
   * for how long, redrawn every second until the next update or done().
   */
  activity(label: string, doing: string): void {
    if (!this.enabled) return;
    this.stopTicking();
    const since = Date.now();
    const draw = () => {
      const seconds = Math.floor((Date.now() - since) / 1000);
      const text = `${label.padEnd(12)} ${seconds} s  ${doing}`;
      this.stream.write(`\r${text.slice(0, (this.stream.columns ?? 120) - 1)}\x1b[K`);
      this.drawn = true;
    };
    draw();
    this.ticking = setInterval(draw, 1000);
    // A bar never keeps the process alive.
    this.ticking.unref();
  }

  /** Clears the line so the summary starts on a clean one; a new update() starts its own rate. */
  done(): void {
    this.stopTicking();
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
    this.started = Date.now();
  }

  private stopTicking(): void {
    clearInterval(this.ticking);
    this.ticking = undefined;
  }
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** Per-target progress: bars redrawn in place on a terminal, one line per change otherwise (CI logs). */
export interface TargetLine {
  target: string;
  status: string;
  stage: string | null;
  percent: number;
  workerId?: string | null;
  gpu?: string | null;
  error?: string | null;
}

const WIDTH = 24;

export class ProgressView {
  private readonly lines = new Map<string, TargetLine>();
  private drawn = 0;
  private readonly lastPrinted = new Map<string, string>();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty = Boolean(out.isTTY) && !process.env.CI,
  ) {}

  update(line: TargetLine): void {
    const previous = this.lines.get(line.target);
    this.lines.set(line.target, { ...previous, ...line });
    this.render(line.target);
  }

  private format(l: TargetLine): string {
    const pct = Math.max(0, Math.min(100, Number.isFinite(l.percent) ? l.percent : 0));
    const filled = Math.round((pct / 100) * WIDTH);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}]`;
    const where = l.workerId ? ` on ${l.workerId}${l.gpu ? ` (${l.gpu})` : ''}` : '';
    const err = l.error ? ` ${l.error}` : '';
    return `${l.target.padEnd(6)} ${bar} ${String(Math.round(pct)).padStart(3)}% ${l.status.padEnd(9)} ${l.stage ?? ''}${where}${err}`;
  }

  private render(changed: string): void {
    if (this.tty) {
      if (this.drawn) this.out.write(`\x1b[${this.drawn}A`);
      for (const l of this.lines.values()) this.out.write(`\x1b[2K${this.format(l)}\n`);
      this.drawn = this.lines.size;
      return;
    }
    // Plain output: a line when the stage or status changes (not every percent).
    const l = this.lines.get(changed)!;
    const key = `${l.status}|${l.stage}`;
    if (this.lastPrinted.get(changed) === key) return;
    this.lastPrinted.set(changed, key);
    this.out.write(`${this.format(l)}\n`);
  }
}

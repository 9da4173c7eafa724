export interface ConfigIssue {
  /** Environment variable at fault, e.g. "REDIS_URL". */
  variable: string;
  message: string;
}

/** Thrown at boot when the environment does not describe a runnable process. */
export class ConfigError extends Error {
  readonly code = 'E_CONFIG';

  constructor(readonly issues: ConfigIssue[]) {
    super(`invalid configuration: ${issues.map((i) => `${i.variable}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
  }

  /** The first variable at fault (most errors name exactly one). */
  get variable(): string {
    return this.issues[0]?.variable ?? 'environment';
  }
}

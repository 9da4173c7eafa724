/** Exit codes CI can rely on. */
export const EXIT = {
  ok: 0,
  /** A build (or a target of it) did not succeed. */
  buildFailed: 1,
  /** Bad command line. */
  usage: 2,
  /** The server failed, or could not be reached. */
  server: 3,
  /** Missing, invalid or insufficient API key (401/403). */
  auth: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure with the exit code it maps to; main prints the message and exits with the code. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** The API's error body, when there is one (printed with --json). */
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'CliError';
  }

  static usage(message: string): CliError {
    return new CliError(EXIT.usage, message);
  }
}

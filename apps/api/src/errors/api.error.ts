import { STATUS_CODES } from 'node:http';

export interface FieldIssue {
  /** Dotted path of the offending input, e.g. "spec", "profiles.input", "model". */
  field: string;
  message: string;
}

export interface ApiErrorDetails {
  errors?: FieldIssue[];
  /** Machine-readable cause, e.g. a BuildError code from the native parser. */
  code?: string;
}

/**
 * An error the API answers with as is: a status, a message for humans and, for
 * bad input, the fields at fault. Anything else that escapes a handler is a 500.
 */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly details: ApiErrorDetails = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get reason(): string {
    return STATUS_CODES[this.statusCode] ?? 'Error';
  }

  static badRequest(message: string, errors?: FieldIssue[]): ApiError {
    return new ApiError(400, message, { errors });
  }

  /** Bad input in one field: the message names it, errors[] carries it. */
  static invalidField(field: string, message: string): ApiError {
    return new ApiError(400, `${field}: ${message}`, { errors: [{ field, message }] });
  }

  static notFound(message: string): ApiError {
    return new ApiError(404, message);
  }

  static payloadTooLarge(message: string): ApiError {
    return new ApiError(413, message, { errors: [{ field: 'model', message }] });
  }

  static unsupportedMediaType(message: string): ApiError {
    return new ApiError(415, message);
  }

  static unprocessable(message: string, code?: string, errors?: FieldIssue[]): ApiError {
    return new ApiError(422, message, { code, errors });
  }

  static serviceUnavailable(message: string, code?: string): ApiError {
    return new ApiError(503, message, { code });
  }
}

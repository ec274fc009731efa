// The ES module entry: the objects of the CommonJS entry under the same names.
import sdk from './index.cjs';

export const {
  DBaudit,
  DEFAULT_BASE_URL,
  VERSION,
  Pager,
  DBauditError,
  MissingCredentialError,
  APIError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  RateLimitError,
  ServiceUnavailableError,
  APIConnectionError,
  APITimeoutError,
} = sdk;

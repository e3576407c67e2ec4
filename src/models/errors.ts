/** A model that cannot be had: the message says which, and the remedy. Never fatal to the process. */
export class ModelUnavailableError extends Error {
  constructor(
    message: string,
    readonly remedy: string,
  ) {
    super(`${message} ${remedy}`);
    this.name = 'ModelUnavailableError';
  }
}

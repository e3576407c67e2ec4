import { describeError } from '../api/client.ts';

/** An error from the service, readable: its message and the request id to quote in a bug report. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const { message, requestId } = describeError(error);
  return (
    <div role="alert" className="error">
      <strong>Error:</strong> {message}
      {requestId && <div className="request-id">request id: {requestId}</div>}
    </div>
  );
}

/** Why an action is disabled, next to it (a disabled button alone says nothing). */
export function Unavailable({ id, reason }: { id: string; reason: string | undefined }) {
  if (!reason) return null;
  return (
    <p className="reason" id={id}>
      Unavailable: {reason}.
    </p>
  );
}

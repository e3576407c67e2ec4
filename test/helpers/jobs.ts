/** Helpers for the transcription-job tests: submit, poll, read SSE. */
export const JOBS = '/v1/audio/transcriptions/jobs';

export interface JobView {
  id: string;
  status: string;
  progress: { audio_seconds_done: number; audio_seconds_total: number | null; windows_done: number; windows_total: number | null };
  segments: { id: number; start: number; end: number; text: string }[];
  result?: unknown;
  error: { message: string; code: string | null } | null;
  attempts: number;
  expires_at: number | null;
}

export async function submitJob(base: string, file: Buffer, fields: Record<string, string> = {}, headers: Record<string, string> = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.set('file', new Blob([file]), 'long.wav');
  const res = await fetch(`${base}${JOBS}`, { method: 'POST', body: form, headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> & { id: string; error?: { code: string; message: string } } };
}

export async function getJob(base: string, id: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${JOBS}/${id}`, { headers });
  return { status: res.status, body: (await res.json()) as JobView };
}

/** Polls until the job is final (or `until` holds). */
export async function waitJob(base: string, id: string, headers: Record<string, string> = {}, until: (job: JobView) => boolean = (j) => ['completed', 'failed', 'cancelled'].includes(j.status), timeoutMs = 240_000): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status, body } = await getJob(base, id, headers);
    if (status !== 200) throw new Error(`GET job ${id}: ${status} ${JSON.stringify(body)}`);
    if (until(body)) return body;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${body.status} (${JSON.stringify(body.progress)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Reads a whole SSE response into events. */
export async function readSse(res: Response): Promise<{ event: string; data: unknown }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.trim())
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = /^data: (.*)$/m.exec(block)?.[1] ?? '';
      return { event, data: JSON.parse(data) as unknown };
    });
}

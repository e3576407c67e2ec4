/** Connection settings (base URL, API key, key header), kept in localStorage. */
export interface Connection {
  baseUrl: string;
  apiKey: string;
  keyHeader: string;
}

const STORAGE_KEY = 'gemma-3-api.connection';

/** The build's VITE_API_BASE_URL, else the page's own origin (the service serves the playground). */
export function defaultBaseUrl(): string {
  const configured = import.meta.env.VITE_API_BASE_URL as string | undefined;
  if (configured) return configured.replace(/\/+$/, '');
  return typeof window !== 'undefined' && /^https?:$/.test(window.location.protocol) ? window.location.origin : 'http://localhost:6666';
}

export function loadConnection(): Connection {
  const fallback: Connection = { baseUrl: defaultBaseUrl(), apiKey: '', keyHeader: 'X-API-Key' };
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null') as Partial<Connection> | null;
    return stored ? { ...fallback, ...stored } : fallback;
  } catch {
    return fallback;
  }
}

export function saveConnection(connection: Connection): void {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(connection));
}

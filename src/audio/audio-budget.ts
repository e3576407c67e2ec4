/**
 * The budget for decoded audio in flight (MAX_AUDIO_IN_FLIGHT_SECONDS): an hour of audio is a few
 * hundred KB of FLAC on the wire but 230 MB once decoded (16 kHz float32), so a dozen concurrent
 * uploads within MAX_UPLOAD_BYTES could hold gigabytes. Each request holds a reservation that grows
 * as its decode worker reports samples (src/audio/decode-pool.ts) — before the memory is spent, not
 * after — and is released once its response is finished or its client is gone. A decode that would
 * pass the budget is stopped there: 503 `audio_budget_exceeded` with Retry-After.
 */
import type { ServerResponse } from 'node:http';
import { ApiError } from '../errors.ts';

export class AudioBudget {
  private held = 0;

  constructor(
    readonly capacitySeconds: number,
    private readonly onChange?: (heldSeconds: number) => void,
  ) {}

  /** Seconds of decoded audio reserved right now. */
  get heldSeconds(): number {
    return this.held;
  }

  /** An empty reservation; resize it as samples arrive, release it once (idempotent). */
  open(): AudioReservation {
    let mine = 0;
    let released = false;
    return {
      reserve: (seconds) => {
        if (released) return true;
        if (seconds > mine && this.held - mine + seconds > this.capacitySeconds) return false;
        this.held += seconds - mine;
        mine = seconds;
        this.onChange?.(this.held);
        return true;
      },
      refusal: () => this.exceeded(),
      release: () => {
        if (released) return;
        released = true;
        this.held -= mine;
        mine = 0;
        this.onChange?.(this.held);
      },
    };
  }

  exceeded(): ApiError {
    return new ApiError(
      503,
      'server_error',
      `Too much audio is being processed right now (over ${this.capacitySeconds} s of decoded audio in flight, MAX_AUDIO_IN_FLIGHT_SECONDS); try again shortly.`,
      { code: 'audio_budget_exceeded', headers: { 'Retry-After': '5' } },
    );
  }

  /** A reservation released when `response` closes (sent, failed, or the client went away). */
  forResponse(response: ServerResponse): AudioReservation {
    const reservation = this.open();
    if (response.closed) reservation.release();
    else response.once('close', reservation.release);
    return reservation;
  }
}

export interface AudioReservation {
  /** Sets the reservation to `seconds` in all; false (nothing changed) when growing to it would pass the budget. */
  reserve(seconds: number): boolean;
  /** The 503 for a decode stopped at the budget. */
  refusal(): ApiError;
  release(): void;
}

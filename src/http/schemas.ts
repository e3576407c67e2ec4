/** Schema fragments shared by several routes (HTTP and WebSocket), so each is written once. */
import { z } from 'zod';

export const speedSchema = z.number().min(0.25).max(4).describe('Speaking speed, 0.25–4.0 (1 = normal).');

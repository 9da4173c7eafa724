import type { ApiClient } from './api-client.js';

export interface SseMessage {
  event: string;
  data: any;
}

/** Reads a Server-Sent Events response as it streams (fetch, so the API key goes in a header). */
export async function* readEvents(client: ApiClient, path: string, signal?: AbortSignal): AsyncGenerator<SseMessage> {
  const res = await client.fetch(path, { headers: { accept: 'text/event-stream' }, signal });
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let idx: number;
    while ((idx = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, idx);
      buffer = buffer.slice(idx + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (!data.length) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(data.join('\n'));
      } catch {
        parsed = data.join('\n');
      }
      yield { event, data: parsed };
    }
  }
}

/**
 * What the three listeners share with the routes they serve: the shape of a request listener, the request's path,
 * and complete plain answers. Kept apart from the listeners so the admission handler and the probes do not depend
 * on how they are served.
 */
import type http from 'node:http'

/** A plain request listener (probes, metrics). */
export type Listener = (req: http.IncomingMessage, res: http.ServerResponse) => void

/**
 * The admission listener; it also gets the request's body deadline in ms (`ServerTimeouts.bodyMs`), which it
 * enforces while reading the body, since only it can answer a late body and let go of the bytes it holds.
 */
export type AdmissionListener = (req: http.IncomingMessage, res: http.ServerResponse, bodyMs: number) => void

/** The request's path without its query (the API server calls webhooks with `?timeout=10s`). */
export const requestPath = (req: http.IncomingMessage): string => {
  const url = String(req.url)
  const q = url.indexOf('?')
  return q < 0 ? url : url.slice(0, q)
}

/** Content type of every plain-text answer. */
export const plainText = 'text/plain; charset=utf-8'

/** Answers with a complete body: the length is always declared, so keep-alive connections stay usable. */
export const send = (
  res: http.ServerResponse,
  status: number,
  body: string,
  contentType: string,
  headers: Readonly<Record<string, string>> = {},
): void => {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), ...headers })
  res.end(body)
}

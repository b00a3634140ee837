/**
 * Waits for a condition without asserting any timing: polls a bounded number of times and returns the final
 * value, so the caller's assertion (not a timeout) decides whether the test passes.
 */
import { setTimeout as sleep } from 'node:timers/promises'

/** Polls `condition` every few milliseconds, at most `tries` times; resolves with its last value. */
export const until = async (condition: () => boolean | Promise<boolean>, tries = 2000): Promise<boolean> => {
  for (let i = 0; i < tries; i++) {
    if (await condition()) return true
    await sleep(5)
  }
  return condition()
}

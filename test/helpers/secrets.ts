import { randomBytes } from 'node:crypto';

/** Every log line any app in this test file wrote. */
export const capturedLogs: string[] = [];

/** Every value made with secretValue(); test/setup.ts asserts none of them reached a log line. */
export const issuedValues = new Set<string>();

/** A distinctive secret value, registered for the log scan. */
export function secretValue(label = 'v'): string {
  const v = `sv_${label}_${randomBytes(12).toString('hex')}`;
  issuedValues.add(v);
  return v;
}

/** Registers a value made by hand (Unicode, large...) for the log scan. */
export function trackValue<T extends string>(v: T): T {
  if (v.length >= 8) issuedValues.add(v);
  return v;
}

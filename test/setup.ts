import { afterAll, expect } from 'vitest';
import { capturedLogs, issuedValues } from './helpers/secrets.js';

// Runs after every test file: no secret value made by the file may appear in any log line.
// Workers are reused across files (isolate: false), so the helpers' module state outlives the
// file: the check empties both lists, and the next file starts with its own.
afterAll(() => {
  const leaks: string[] = [];
  for (const line of capturedLogs) {
    for (const v of issuedValues) if (line.includes(v)) leaks.push(v);
  }
  capturedLogs.length = 0;
  issuedValues.clear();
  expect(leaks, 'secret values found in log lines').toEqual([]);
});

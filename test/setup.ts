import { afterAll, expect } from 'vitest';
import { capturedLogs, issuedValues } from './helpers/secrets.js';

// Runs after every test file: no secret value made by the file may appear in any log line.
afterAll(() => {
  const leaks: string[] = [];
  for (const line of capturedLogs) {
    for (const v of issuedValues) if (line.includes(v)) leaks.push(v);
  }
  expect(leaks, 'secret values found in log lines').toEqual([]);
});

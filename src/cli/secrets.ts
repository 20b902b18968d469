#!/usr/bin/env node
import { main } from './program.js';

/** The `secrets` command: the program is built in program.ts, which a test can import. */
await main(process.argv);

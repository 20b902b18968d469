#!/usr/bin/env node
import { main } from './program.js';

/**
 * The `secrets` command: the program is built in program.ts, which a test can import.
 * No top-level await: the light CLI is bundled as CommonJS (scripts/build-cli.ts says why).
 */
void main(process.argv);

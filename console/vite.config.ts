import { defineConfig } from 'vite';

// Built with `npm run console:build` (vite build console) into dist/console, which the
// server serves at /console (src/http/console.ts). Preact keeps the bundle small.
export default defineConfig({
  base: '/console/',
  build: {
    outDir: '../dist/console',
    emptyOutDir: true,
    // The strict CSP allows no inline script: no polyfill snippet, no inlined assets.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: true,
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});

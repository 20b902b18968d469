// The events benchmark's webhook receiver (bench/events.ts): a bare node:http server in a
// process of its own, answering 204, so the measured service does not share its event loop
// with the receiver. It only notes each event's delay (arrival minus the event's
// `timestamp`); signatures are verified by the tests (test/events), not here. The delays
// go to the parent in batches over IPC: every 100 ms, and at once when asked ('flush').
import { createServer } from 'node:http';

let delays = [];
const KEY = '"timestamp":"';
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const arrived = Date.now();
    const body = Buffer.concat(chunks).toString();
    const at = body.indexOf(KEY);
    if (at >= 0) {
      const from = at + KEY.length;
      const t = Date.parse(body.slice(from, body.indexOf('"', from)));
      if (!Number.isNaN(t)) delays.push(arrived - t);
    }
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 60_000;

const send = (kind) => {
  const out = delays;
  delays = [];
  process.send({ kind, delays: out });
};
setInterval(() => {
  if (delays.length > 0) send('delays');
}, 100).unref();
process.on('message', (m) => {
  if (m === 'flush') send('flushed');
});
process.on('disconnect', () => process.exit(0));
server.listen(0, '127.0.0.1', () => process.send({ kind: 'listening', port: server.address().port }));

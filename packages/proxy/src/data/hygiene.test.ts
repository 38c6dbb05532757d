import { describeHygiene } from '../test-support/hygiene.js';

// Timeouts, connection limit and overload on the lean HTTP/1.1 server (h1-server.ts).
describeHygiene('lean', 0);

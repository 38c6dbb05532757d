import { describeH2Hygiene } from '../test-support/h2-hygiene.js';

// HTTP/2 connection and stream bounds and the upstream bounds, with the lean HTTP/1.1 codec on
// both sides; h2-hygiene-node-http.test.ts runs them on node:http.
describeH2Hygiene('lean');

// Jest setup file of the `llhttp` project: turns the HTTP/1.1 fast path off for the test file
// (jest gives each test file its own copy of process.env, so nothing else sees it).
process.env.OCTO_PROXY_FAST_PARSE = '0';

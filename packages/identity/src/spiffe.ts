// SPIFFE IDs live in @octo-mesh/contracts (pure): the control plane's access table reads them too.
export * from '@octo-mesh/contracts/spiffe.js';

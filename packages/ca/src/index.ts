export { startCa, type RunningCa, type CaDeps } from './server.js';
export { caConfig, type CaConfig, type CaConfigInput } from './config.js';
export { loadRoots, GENERATED_ROOT, type LoadedRoots } from './roots.js';
export { TokenReviewVerifier, subjectOfReview } from './token-review.js';

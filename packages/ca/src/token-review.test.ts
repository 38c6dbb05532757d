import { describe, expect, it } from '@jest/globals';
import { subjectOfReview } from './token-review.js';

describe('subjectOfReview', () => {
  it.each([
    // columns: case, TokenReview status, subject or reason part
    ['a ServiceAccount token for our audience', { authenticated: true, audiences: ['octo-ca'], user: { username: 'system:serviceaccount:shop:cart' } }, { namespace: 'shop', serviceAccount: 'cart' }],
    ['a dotted ServiceAccount name', { authenticated: true, audiences: ['api', 'octo-ca'], user: { username: 'system:serviceaccount:a-b:build.bot' } }, { namespace: 'a-b', serviceAccount: 'build.bot' }],
    ['not authenticated', { authenticated: false, error: 'token expired' }, 'token not authenticated by the API server (token expired)'],
    ['no status', undefined, 'not authenticated'],
    ['another audience', { authenticated: true, audiences: ['vault'], user: { username: 'system:serviceaccount:shop:cart' } }, 'not valid for audience "octo-ca"'],
    ['no audiences answered', { authenticated: true, user: { username: 'system:serviceaccount:shop:cart' } }, 'not valid for audience'],
    ['a user, not a ServiceAccount', { authenticated: true, audiences: ['octo-ca'], user: { username: 'alice' } }, 'belongs to "alice", not a ServiceAccount'],
    ['a node', { authenticated: true, audiences: ['octo-ca'], user: { username: 'system:node:n1' } }, 'not a ServiceAccount'],
  ])('%s', (_case, status, expected) => {
    const got = subjectOfReview(status, 'octo-ca');
    if (typeof expected === 'string') expect(got).toEqual(expect.stringContaining(expected));
    else expect(got).toEqual(expected);
  });
});

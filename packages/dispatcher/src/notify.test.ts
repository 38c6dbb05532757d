import { describe, expect, it } from '@jest/globals';
import { NotificationBuffer, isSubscribed, matchesFilter, type Notification, type SubscriptionFilter } from './notify.js';

const n = (kind: string, name: string, version: string, service = `demo/${name}`): Notification => ({ kind, namespace: 'demo', name, version, deleted: false, service });

describe('matchesFilter', () => {
  // columns: filter, notification, matches
  it.each<[SubscriptionFilter, Notification, boolean]>([
    [{}, n('RoutePolicy', 'catalog', '1'), true],
    [{ kind: 'RoutePolicy' }, n('RoutePolicy', 'catalog', '1'), true],
    [{ kind: 'Service' }, n('RoutePolicy', 'catalog', '1'), false],
    [{ namespace: 'other' }, n('RoutePolicy', 'catalog', '1'), false],
    [{ name: 'catalog' }, n('Service', 'catalog', '1'), true],
    [{ service: 'demo/catalog' }, n('RoutePolicy', 'catalog-split', '1', 'demo/catalog'), true],
    [{ service: 'demo/catalog' }, n('RoutePolicy', 'ratings', '1'), false],
    [{ kind: 'ProxyVersion', service: '' }, n('ProxyVersion', 'v2', '1', ''), true],
  ])('%j vs %j → %s', (f, note, want) => {
    expect(matchesFilter(f, note)).toBe(want);
  });

  it('no subscriptions means nothing', () => {
    expect(isSubscribed([], n('Service', 'a', '1'))).toBe(false);
  });
});

describe('NotificationBuffer', () => {
  it('keeps the newest notification per object and drains in version order', () => {
    const b = new NotificationBuffer();
    b.add(n('RoutePolicy', 'a', '1'));
    b.add(n('RoutePolicy', 'b', '2'));
    b.add(n('RoutePolicy', 'a', '3'));
    b.add(n('RoutePolicy', 'a', '2')); // older than pending: ignored
    b.add(n('Service', 'a', '4'));
    expect(b.drain().map((x) => `${x.kind}/${x.name}@${x.version}`)).toEqual(['RoutePolicy/b@2', 'RoutePolicy/a@3', 'Service/a@4']);
    expect(b.coalesced).toBe(1);
    expect(b.size).toBe(0);
  });
});

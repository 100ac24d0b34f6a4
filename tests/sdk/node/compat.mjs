// Compatibility test: the official Telnyx Node/TypeScript SDK (npm
// `telnyx`) against a running numpool, unchanged but for its base URL.
//
// Usage: NUMPOOL_BASE_URL=http://127.0.0.1:PORT/v2 NUMPOOL_API_KEY=KEY node compat.mjs
// Profiles (create, filter, merge, delete), number assignment, sticky
// sends, paging across pages, and the SDK's typed errors. Exits non-zero
// on the first failure.
import assert from 'node:assert/strict';
import Telnyx from 'telnyx';

const client = new Telnyx({
  apiKey: process.env.NUMPOOL_API_KEY ?? 'sdk-test-key',
  baseURL: process.env.NUMPOOL_BASE_URL,
  maxRetries: 0,
});

const name = `node-sdk-${process.pid}`;
const profile = (
  await client.messagingProfiles.create({ name, whitelisted_destinations: ['US'] })
).data;
assert.ok(profile.id, 'a created profile has an id');
assert.equal(profile.number_pool_settings, null, 'a new profile has its pool off');

// filter: {name} is sent as filter[name]: only that profile comes back.
await client.messagingProfiles.create({ name: `${name}-other`, whitelisted_destinations: ['US'] });
const named = [];
for await (const p of client.messagingProfiles.list({ filter: { name } })) named.push(p.id);
assert.deepEqual(named, [profile.id], 'filter[name] is exact');
const containing = [];
for await (const p of client.messagingProfiles.list({ 'filter[name][contains]': name })) {
  containing.push(p.name);
}
assert.equal(containing.length, 2, 'filter[name][contains]');

// number_pool_settings merges field by field.
const merged = (
  await client.messagingProfiles.update(profile.id, {
    number_pool_settings: { sticky_sender: true, long_code_weight: 1, toll_free_weight: 0, skip_unhealthy: false },
  })
).data;
assert.equal(merged.number_pool_settings.sticky_sender, true);
const again = (
  await client.messagingProfiles.update(profile.id, {
    number_pool_settings: { geomatch: true },
  })
).data;
assert.equal(again.number_pool_settings.sticky_sender, true, 'a PATCH merges');
assert.equal(again.number_pool_settings.geomatch, true);

// Assign a pool; list it across pages (the SDK follows meta).
const numbers = ['+13125550001', '+13125550002', '+13125550003'].map((n) =>
  n.replace('555000', `55${process.pid % 10}00`),
);
for (const n of numbers) {
  const updated = (await client.phoneNumbers.messaging.update(n, { messaging_profile_id: profile.id })).data;
  assert.equal(updated.messaging_profile_id, profile.id);
}
const pooled = [];
for await (const n of client.messagingProfiles.listPhoneNumbers(profile.id, { 'page[size]': 2 })) {
  pooled.push(n.phone_number);
}
assert.deepEqual(pooled.sort(), [...numbers].sort(), 'paging across pages');
const filtered = [];
for await (const n of client.phoneNumbers.messaging.list({
  'filter[phone_number]': numbers.slice(0, 2).join(','),
})) {
  filtered.push(n.phone_number);
}
assert.deepEqual(filtered.sort(), numbers.slice(0, 2).sort(), 'a comma-separated filter[phone_number]');

// Sticky sends: the second message to a recipient comes from the first's sender.
const to = '+14155559876';
const first = (await client.messages.sendNumberPool({ messaging_profile_id: profile.id, to, text: 'hi' })).data;
const second = (await client.messages.sendNumberPool({ messaging_profile_id: profile.id, to, text: 'again' })).data;
assert.ok(numbers.includes(first.from.phone_number), first.from.phone_number);
assert.equal(second.from.phone_number, first.from.phone_number, 'sticky sender');
assert.equal(second.to[0].status, 'queued');

// Typed errors: 404, 422, 401.
await assert.rejects(client.messagingProfiles.retrieve('00000000-0000-4000-8000-000000000000'), Telnyx.NotFoundError);
await assert.rejects(
  client.messages.sendNumberPool({ messaging_profile_id: profile.id, to, text: 'x'.repeat(1531) }),
  (e) => e instanceof Telnyx.UnprocessableEntityError && e.error.errors[0].source.pointer === '/text',
);
const stranger = new Telnyx({ apiKey: 'wrong', baseURL: process.env.NUMPOOL_BASE_URL, maxRetries: 0 });
await assert.rejects(stranger.messagingProfiles.list(), Telnyx.AuthenticationError);

const deleted = (await client.messagingProfiles.delete(profile.id)).data;
assert.equal(deleted.id, profile.id);
await assert.rejects(client.messagingProfiles.retrieve(profile.id), Telnyx.NotFoundError);
console.log('node sdk: ok (profiles, filters, merge, numbers, paging, sticky sends, typed errors)');

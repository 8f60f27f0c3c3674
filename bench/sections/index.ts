/**
 * Every benchmark section, in the order a full run takes them. To add one: write a `Section` in a
 * file of this directory (see bench/section.ts) and list it here.
 */
import type { Section } from '../section.js';
import { coalescingSection } from './coalescing.js';
import { durabilitySection } from './durability.js';
import { fairnessSection } from './fairness.js';
import { footprintSection } from './footprint.js';
import { identitiesSection } from './identities.js';
import { ingestSection } from './ingest.js';
import { latencySection } from './latency.js';
import { localSignerSection } from './local-signer.js';
import { longPollSection } from './long-poll.js';
import { streamingSection } from './streaming.js';
import { webhookFairnessSection } from './webhook-fairness.js';

export const SECTIONS: readonly Section<unknown>[] = [
  coalescingSection,
  ingestSection,
  streamingSection,
  latencySection,
  footprintSection,
  longPollSection,
  localSignerSection,
  durabilitySection,
  fairnessSection,
  identitiesSection,
  webhookFairnessSection,
];

"""Selfies: an upload accepted at once and checked by a face worker (the selfie job), its
state for the guest (long-poll, event stream), their matched photos and "not me" answers."""

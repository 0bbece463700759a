-- Two partial indexes for `trellis audit verify` (issue 5, ninth session). Besides walking the
-- tree, verify looks for the log's own governance events (signed `audit.prune` and
-- `audit.erase`) and for erased rows. Both are rare, but without an index each lookup read the
-- whole event table: about 0.85 s of a 1-million-event verify (one core of two, the other idle),
-- against well under a millisecond with these (docs/benchmarks.md).
--
-- Neither is a source of truth: an owner who drops one only makes verify slower, and a query
-- that cannot use an index still reads the rows. Ordinary events match neither predicate, so
-- an insert only evaluates them and adds no index entry.
CREATE INDEX audit_events_governance ON trellis.audit_events (seq)
  WHERE action IN ('audit.prune', 'audit.erase');
-- By erased_by: an erasure's rows are looked up by the erasure's seq.
CREATE INDEX audit_events_erased ON trellis.audit_events (erased_by)
  WHERE erased_by IS NOT NULL OR erased_commitment IS NOT NULL;

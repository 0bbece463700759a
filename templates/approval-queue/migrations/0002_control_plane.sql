-- The control plane may read, import and upgrade one named app's rows (core migration 0007).
SELECT trellis.allow_control_plane('trellis.approval_queue_requests');

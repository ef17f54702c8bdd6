"""What the workspace adds to every run, wherever it executes: the source snapshot, the console log
(``user_logs/std_log.txt``, re-uploaded live with ``./logs``), ``./outputs`` and the final status.

Used by local runs (``compute.local``) and by the job runner inside remote jobs
(``compute.job_runner``): one component, one order, one KILLED behaviour.
"""

"""The optimizer service: optimization requests in, gated program versions out.

Modules: ``consumer`` (requests → queued jobs), ``executor`` (claims jobs, runs each in a child
process via ``runner``), ``job`` (the child: compile + holdout evaluation), ``gate`` + ``publisher``
(ship-if-better, registry row and ProgramUpdated through the ``outbox``), ``reaper`` (jobs whose
optimizer died), ``acks`` (program-acks → registry). Importing this package stays light: DSPy is
imported by the modules that need it.
"""

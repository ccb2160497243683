"""The reply inbox's pure cores: urgency and copies, the workflow's transitions, its rules.

- :mod:`~pipeline.stages.inbox.items`: how urgent an item is, how long it has waited, whether
  it is past its brand's SLA, and copies of one post grouped under the first.
- :mod:`~pipeline.stages.inbox.workflow`: open -> assigned -> answered | dismissed.
- :mod:`~pipeline.stages.inbox.rules`: the inbox file (SLA per brand, answer templates,
  forwarding rules) and the bodies a forwarded mention or incident is sent as.
"""

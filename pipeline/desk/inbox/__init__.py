"""The console's Bandeja / Inbox: items that need a reply, their workflow, and forwarding.

:mod:`~pipeline.desk.inbox.service` joins the store's items with their workflow state;
:mod:`~pipeline.desk.inbox.routes` serves the page, its forms and ``/api/inbox...``;
:mod:`~pipeline.desk.inbox.courier` delivers forwards and applies the forwarding rules in
the background.
"""

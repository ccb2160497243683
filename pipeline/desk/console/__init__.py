"""The listening console: the pages a community manager opens every morning.

Server-rendered HTML (Jinja2 templates under ``pipeline/desk/templates``, Babel formats) over
the same store as the JSON API, with a small script (``static/console.js``) for the charts
(uPlot, vendored under ``static/vendor``), "load more" in place and the live parts.

- :mod:`~pipeline.desk.console.context`: what every page shares (preferences, templates);
- :mod:`~pipeline.desk.console.view`: the period and filters a page's query string asks for;
- :mod:`~pipeline.desk.console.views`: what each page shows, gathered from the store;
- :mod:`~pipeline.desk.console.charts`: the charts as data;
- :mod:`~pipeline.desk.console.incidents`: the store's crisis incidents, where it keeps them;
- :mod:`~pipeline.desk.console.pages`, :mod:`~pipeline.desk.console.account`: the routes.
"""

"""Sentiment stage: batched transformer inference, and an async batcher for the agent.

- :mod:`~pipeline.stages.sentiment.labels`: the three labels, a checkpoint's classes mapped
  onto them (:func:`~pipeline.stages.sentiment.labels.label_mapping`) and
  :class:`~pipeline.stages.sentiment.labels.SentimentResult`;
- :mod:`~pipeline.stages.sentiment.engine`:
  :class:`~pipeline.stages.sentiment.engine.SentimentEngine`, which loads a checkpoint and
  scores texts, and
  :func:`~pipeline.stages.sentiment.engine.build_engine`, the engine the settings describe;
- :mod:`~pipeline.stages.sentiment.planning`: texts' lengths cut into batches within an item
  and a padded-token budget, and the padded shapes a batch may take;
- :mod:`~pipeline.stages.sentiment.cuda_graphs`: on CUDA, each batch shape's forward pass
  captured once and replayed;
- :mod:`~pipeline.stages.sentiment.assembly` and :mod:`~pipeline.stages.sentiment.feed`:
  padded batches assembled into buffers made once, copied to the device on a side stream,
  results read back into a reused pinned buffer;
- :mod:`~pipeline.stages.sentiment.encoding`: the engine's tokenising half, and
  :mod:`~pipeline.stages.sentiment.engines`: several engine processes behind one batcher;
- :mod:`~pipeline.stages.sentiment.batcher`:
  :class:`~pipeline.stages.sentiment.batcher.SentimentBatcher`, the async front the Faust
  agent awaits: requests gathered into batches by budget, one thread owning the model;
- :mod:`~pipeline.stages.sentiment.mentions`: results written onto mention records, and the
  memory that lets a conversation's copies inherit its first copy's result.

- :mod:`~pipeline.stages.sentiment.tokens`: cleaning and tokenising, a call's token ids
  packed in two numpy arrays (:class:`~pipeline.stages.sentiment.tokens.PackedTokens`);
- :mod:`~pipeline.stages.sentiment.int8`: dynamic int8 ``Linear`` layers for CPU inference,
  smoothed by a calibration stored with the model.
"""

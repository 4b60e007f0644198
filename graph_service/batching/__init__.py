"""Server-side batching (``--enable_batching``): TF Serving's shared batch scheduler.

Queues per version and signature, batch threads, merging inputs and splitting
outputs, handing results back to each caller's event loop, and the
``--batching_parameters_file`` format. Knows nothing of models or protocols:
``handlers`` gives it a run function per queue.
"""

"""The graph tier's wire formats without TensorFlow: TF Serving's protos, dtypes, TensorProto.

Loading ``tensorflow`` would cost every worker seconds and hundreds of MB for a
tier that never runs a graph; these read and write the same bytes. Imports
nothing else of logic_service.
"""

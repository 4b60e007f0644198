"""TF Serving's TF Lite and TF Text testdata, rebuilt by real TensorFlow.

TF Serving's repository ships them as binaries under servables/tensorflow/testdata;
here they are made the way those were made:

* ``saved_model_half_plus_two_tflite``: half_plus_two (y = 0.5 x + 2, x of shape
  [1]) converted from a TF1 session, so the TF Lite tensors are named ``x`` and
  ``y`` and the model carries no SignatureDef (the server names its signature
  ``serving_default`` after the tensors);
* ``saved_model_half_plus_two_tflite_with_sigdef``: the same model with a
  SignatureDef in TF Lite's legacy ``signature_defs_metadata``
  (``tflite::SetSignatureDefMap``), whose aliases map to ``x:0`` / ``y:0``;
* ``tf_text_regression``: testdata/tf_text_regression.py's model, y = x + 1 run
  after a graph full of TF Text ops, left out only the SentencePiece tokenizer,
  whose model file TF Text's pip package does not ship.

Only the version directory's ``model.tflite`` exists in the TF Lite ones, as in
testdata: served with ``--prefer_tflite_model``, the SavedModel is not needed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

VERSION_DIR = "00000123"


def half_plus_two_tflite() -> bytes:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        x = tf.compat.v1.placeholder(tf.float32, shape=[1], name="x")
        y = tf.add(tf.multiply(tf.constant(0.5), x), tf.constant(2.0), name="y")
        converter = tf.compat.v1.lite.TFLiteConverter.from_session(session, [x], [y])
        return converter.convert()


def build_tflite(root: Path) -> tuple[Path, Path]:
    """The two TF Lite model paths, as _GetTfLiteModelPath / ..WithSigDefPath name them."""
    from tensorflow.core.protobuf import meta_graph_pb2

    from graph_service.runtime.tflite_model import with_legacy_signatures

    model = half_plus_two_tflite()
    plain = root / "saved_model_half_plus_two_tflite"
    (plain / VERSION_DIR).mkdir(parents=True)
    (plain / VERSION_DIR / "model.tflite").write_bytes(model)

    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    signature.inputs["x"].name = "x:0"
    signature.outputs["y"].name = "y:0"
    with_sigdef = root / "saved_model_half_plus_two_tflite_with_sigdef"
    (with_sigdef / VERSION_DIR).mkdir(parents=True)
    (with_sigdef / VERSION_DIR / "model.tflite").write_bytes(
        with_legacy_signatures(model, {"serving_default": signature})
    )
    return plain, with_sigdef


def build_tf_text_regression(root: Path) -> Path:
    """testdata/tf_text_regression (version 01), built with tensorflow_text."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_text as text

    class TfTextOps(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            initializer = tf.lookup.KeyValueTensorInitializer(
                ["i"], [1], key_dtype=tf.string, value_dtype=tf.int64
            )
            self.wp_vocab_table = tf.lookup.StaticHashTable(initializer, default_value=-1)

        @tf.function
        def __call__(self, x):
            def assert_check(tensor):
                return tf.debugging.assert_equal(tensor, tf.identity(tensor))

            deps = []
            scores = np.array([[10.0, 12.0, 6.0, 4.0], [13.0, 12.0, 11.0, 10.0]])
            weights = np.array(
                [[-1.0, 1.0, -2.0, 2.0, 0.0], [3.0, -3.0, 4.0, -4.0, 0.0],
                 [5.0, 1.0, 10.0, 1.0, 1.0], [-7.0, 7.0, -8.0, 8.0, 0.0],
                 [0.0, 1.0, 2.0, 3.0, 0.0]], dtype=np.float32,
            )
            allowed = np.array(
                [[True] * 5, [True] * 5, [True, False, True, False, False], [True] * 5,
                 [True, False, True, True, True]]
            )
            sequence = text.viterbi_constrained_sequence(
                np.array([scores] * 3, dtype=np.float32), [2, 2, 2],
                allowed_transitions=allowed, transition_weights=weights,
                use_log_space=True, use_start_and_end_states=True,
            )
            deps.append(assert_check(sequence.to_tensor()))
            _, offsets_map = text.normalize_utf8_with_offsets_map(
                ["株式会社ＫＡＤＯＫＡＷＡ"], "NFKC"
            )
            ends = [[3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]]
            deps.append(assert_check(text.find_source_offsets(offsets_map, ends)))
            tree, _ = text.max_spanning_tree(
                tf.constant([4, 3], tf.int32),
                tf.constant(
                    [[[0, 0, 0, 0], [1, 0, 0, 0], [1, 2, 0, 0], [1, 2, 3, 4]],
                     [[4, 3, 2, 9], [0, 0, 2, 9], [0, 0, 0, 9], [9, 9, 9, 9]]], tf.int32,
                ),
            )
            deps.append(assert_check(tree))
            deps.append(assert_check(text.normalize_utf8(text.case_fold_utf8(["A String"]))))
            split = text.regex_split(input=["Yo dawg!"], delim_regex_pattern=r"\s")
            deps.append(assert_check(split.to_tensor()))
            rouge, _, _ = text.metrics.rouge_l(
                tf.ragged.constant([["captain", "of", "the", "delta", "flight"],
                                    ["the", "1990", "transcript"]]),
                tf.ragged.constant([["delta", "air", "lines", "flight"],
                                    ["this", "concludes", "the", "transcript"]]),
            )
            deps.append(assert_check(rouge))
            breaker = text.StateBasedSentenceBreaker()
            fragments, _, _ = breaker.break_sentences_with_offsets(
                [["Welcome to the U.S.! Harry"], ["Wu Tang Clan; ain't nothing"]]
            )
            deps.append(assert_check(fragments.to_tensor()))
            merged = text.SplitMergeTokenizer().tokenize(
                b"IloveFlume!", [0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0]
            )
            deps.append(assert_check(merged))
            deps.append(assert_check(
                tf.strings.unicode_script([ord("a"), 0x0411, 0x82B8, ord(",")])
            ))
            deps.append(assert_check(
                text.UnicodeScriptTokenizer().tokenize(["a string"]).to_tensor()
            ))
            deps.append(assert_check(
                text.WhitespaceTokenizer().tokenize(["a string"]).to_tensor()
            ))
            wordpiece = text.WordpieceTokenizer(self.wp_vocab_table).tokenize(["i am"])
            deps.append(assert_check(wordpiece.to_tensor()))
            deps.append(assert_check(
                text.wordshape(["a-b", "a\u2010b".encode()], text.WordShape.HAS_PUNCTUATION_DASH)
            ))
            with tf.control_dependencies(deps):
                y = tf.add(x, [1])
            return {"y": y}

    module = TfTextOps()
    call = module.__call__.get_concrete_function(tf.TensorSpec([1], tf.float32, "x"))
    model_path = root / "tf_text_regression"
    with tempfile.TemporaryDirectory() as scratch:
        tf.saved_model.save(module, scratch, call)
        shutil.copytree(scratch, model_path / "01")
    return model_path

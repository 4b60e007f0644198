#!/bin/bash
# As in the real tensorflow/serving image: one model from MODEL_BASE_PATH/MODEL_NAME.
tensorflow_model_server --port=8500 --rest_api_port=8501 \
    --model_name="${MODEL_NAME}" --model_base_path="${MODEL_BASE_PATH}/${MODEL_NAME}" "$@"

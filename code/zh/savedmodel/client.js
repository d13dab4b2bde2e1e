// Node.js 客户端：读取一张手写数字的 PNG 图片，缩小为 28×28 的灰度图并以字符画打印，
// 发送给 TensorFlow Serving 的 REST API，打印模型猜测的数字及其概率。
//
// 运行前先启动服务器（模型名 MLP，签名 call），然后：
//     npm install            # 安装 PNG 解码库 pngjs（发送 HTTP 请求用 Node.js 18 起自带的 fetch）
//     node client.js                         # 识别 digit_5.png
//     node client.js 图片.png --host 127.0.0.1 --port 8501 --model MLP
// 也可以用环境变量 SERVING_HOST、SERVING_PORT、MODEL_NAME 指定服务器与模型。
const fs = require('fs')
const path = require('path')
const { PNG } = require('pngjs')

// 读取 PNG，按亮度公式转为灰度，再按面积平均缩小为 size×size，返回取值 0~1 的二维数组
function loadGreyImage (fileName, size = 28) {
  const png = PNG.sync.read(fs.readFileSync(fileName))
  const grey = (x, y) => {
    const i = (png.width * y + x) * 4 // 每个像素依次是 R、G、B、A 四个字节
    return (0.299 * png.data[i] + 0.587 * png.data[i + 1] + 0.114 * png.data[i + 2]) / 255
  }
  const image = []
  for (let row = 0; row < size; row++) {
    const line = []
    const y0 = Math.floor(row * png.height / size)
    const y1 = Math.max(y0 + 1, Math.floor((row + 1) * png.height / size))
    for (let col = 0; col < size; col++) {
      const x0 = Math.floor(col * png.width / size)
      const x1 = Math.max(x0 + 1, Math.floor((col + 1) * png.width / size))
      let sum = 0 // 新图的一个像素 = 原图中对应方块内所有像素的平均值
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) sum += grey(x, y)
      }
      line.push(sum / ((y1 - y0) * (x1 - x0)))
    }
    image.push(line)
  }
  return image
}

// 以字符画打印：笔画（亮）为 #，背景（暗）为 .
function printImage (image) {
  for (const line of image) {
    console.log(line.map(value => (value > 0.3 ? '#' : '.')).join(' '))
  }
}

// 这个地址的请求会不会交给代理：设置了 http_proxy，且 no_proxy 没有列出这个主机时会。
// （Node.js 的 fetch 默认不用这些环境变量；较新的 Node.js 在设置了 NODE_USE_ENV_PROXY=1 时才用）
function proxyFor (url, env = process.env) {
  const proxy = env.http_proxy || env.HTTP_PROXY
  if (!proxy) return null
  const host = new URL(url).hostname
  const skip = (env.no_proxy || env.NO_PROXY || '').split(',').map(name => name.trim()).filter(Boolean)
  if (skip.some(name => name === '*' || host === name || host.endsWith('.' + name.replace(/^\./, '')))) return null
  return proxy
}

// 连接失败时的一句话：连不上的是代理还是服务器？
function connectionErrorMessage (error, url, env = process.env) {
  const proxy = proxyFor(url, env)
  const cause = error.cause || {}
  if (proxy) {
    const p = new URL(proxy)
    const proxyPort = Number(p.port || 80)
    if (cause.port === proxyPort && [p.hostname, '127.0.0.1', '::1'].includes(cause.address)) {
      return `请求被发给了代理 ${proxy}（环境变量 http_proxy），没能到达 ${url}：` +
        '访问本机的服务器不需要代理，请设置 no_proxy=localhost,127.0.0.1 后再试。'
    }
  }
  return `无法连接到 ${url}，请先启动服务器。`
}

// 发送 predict 请求。模型的输入形状是 [None, 28, 28, 1]，所以每个像素再包一层 [ ]
async function predict (image, { host, port, model }) {
  const url = `http://${host}:${port}/v1/models/${model}:predict`
  const body = {
    signature_name: 'call',
    instances: [image.map(line => line.map(value => [value]))]
  }
  let response
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    })
  } catch (error) {
    throw new Error(connectionErrorMessage(error, url))
  }
  const answer = await response.json().catch(() => ({}))
  if (!response.ok || !answer.predictions) { // 出错时服务器返回 {"error": "..."}
    throw new Error(`服务器返回错误（HTTP ${response.status}）：${answer.error || '响应不是预期的 JSON'}`)
  }
  return answer.predictions[0] // 第一张（也是唯一一张）图像的 10 个概率
}

function parseArgs (argv) {
  const options = {
    file: path.join(__dirname, 'digit_5.png'),
    host: process.env.SERVING_HOST || 'localhost',
    port: process.env.SERVING_PORT || '8501',
    model: process.env.MODEL_NAME || 'MLP'
  }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '')
    if (argv[i].startsWith('--') && name in options && name !== 'file' && i + 1 < argv.length) {
      options[name] = argv[++i]
    } else if (!argv[i].startsWith('--')) {
      options.file = argv[i]
    } else {
      throw new Error(`不认识的参数：${argv[i]}（可用：图片文件名 --host --port --model）`)
    }
  }
  return options
}

async function main () {
  const options = parseArgs(process.argv.slice(2))
  const image = loadGreyImage(options.file)
  printImage(image)
  const probabilities = await predict(image, options)
  const digit = probabilities.indexOf(Math.max(...probabilities))
  console.log(`我们猜这个数字是${digit}，概率是${probabilities[digit]}`)
}

if (require.main === module) { // 直接运行时执行 main；被 require 时只导出函数（测试会用到）
  main().catch(error => {
    console.error(error.message)
    process.exit(1)
  })
}

module.exports = { loadGreyImage, predict, proxyFor, connectionErrorMessage }

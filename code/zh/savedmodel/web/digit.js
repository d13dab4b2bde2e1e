// 手写数字识别页面：在画布上写一个数字，按 MNIST 的做法把它变成 28×28 的灰度图，
// 从浏览器直接调用 TensorFlow Serving 的 REST API（:predict），显示 10 个数字各自的概率。
// 页面与服务器不在同一个“源”（端口不同），所以服务器启动时要加上 --rest_api_enable_cors_support=true。
'use strict'

const pad = document.getElementById('pad')
const ctx = pad.getContext('2d')
const statusLine = document.getElementById('status')
const predictionBox = document.getElementById('prediction')
const list = document.getElementById('probabilities')

// 地址栏中的 ?server=...&model=...&signature=... 优先于输入框中的默认值
const query = new URLSearchParams(window.location.search)
for (const name of ['server', 'model', 'signature']) {
  if (query.has(name)) document.getElementById(name).value = query.get(name)
}

// ---------------------------------------------------------------- 画图：鼠标、手指、触控笔都是 pointer 事件
let strokes = 0 // 已经写完的笔画数
let drawing = false

function clearPad () {
  ctx.fillStyle = '#000' // MNIST 是黑底白字
  ctx.fillRect(0, 0, pad.width, pad.height)
  strokes = 0
  predictionBox.textContent = ''
  showProbabilities(null)
  document.getElementById('preview').getContext('2d').clearRect(0, 0, 28, 28)
}

function penAt (event) {
  const box = pad.getBoundingClientRect()
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height]
}

pad.addEventListener('pointerdown', event => {
  drawing = true
  pad.setPointerCapture(event.pointerId)
  ctx.strokeStyle = '#fff'
  ctx.lineWidth = 18
  ctx.lineCap = 'round'
  ctx.lineJoin = 'round'
  const [x, y] = penAt(event)
  ctx.beginPath()
  ctx.moveTo(x, y)
  ctx.lineTo(x, y) // 只点一下也留下一个圆点
  ctx.stroke()
})
pad.addEventListener('pointermove', event => {
  if (!drawing) return
  const [x, y] = penAt(event)
  ctx.lineTo(x, y)
  ctx.stroke()
})
function endStroke () {
  if (!drawing) return
  drawing = false
  strokes += 1
  recognise(strokes)
}
pad.addEventListener('pointerup', endStroke)
pad.addEventListener('pointercancel', endStroke)
document.getElementById('clear').addEventListener('click', clearPad)

// ---------------------------------------------------------------- 预处理：与 MNIST 的做法相同
// MNIST 的数字先按比例缩放到 20×20 的方框内（保持长宽比，边缘成为灰色），
// 再放进 28×28 的图像，使笔画的质心（按灰度加权的中心）落在图像中心。

// 画布上的灰度，0（黑）~ 1（白）
function greyPixels () {
  const rgba = ctx.getImageData(0, 0, pad.width, pad.height).data
  const grey = new Float32Array(pad.width * pad.height)
  for (let i = 0; i < grey.length; i++) grey[i] = rgba[4 * i] / 255
  return grey
}

function toMnist (grey, width, height) {
  // 1. 笔画的外接矩形
  let top = height; let bottom = -1; let left = width; let right = -1
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (grey[y * width + x] > 0) {
        top = Math.min(top, y); bottom = Math.max(bottom, y)
        left = Math.min(left, x); right = Math.max(right, x)
      }
    }
  }
  if (bottom < 0) return null // 还什么都没写
  const boxW = right - left + 1
  const boxH = bottom - top + 1
  // 2. 按比例缩小到长边为 20 像素：新图的每个像素取原图中对应区域的平均值
  const scale = 20 / Math.max(boxW, boxH)
  const w = Math.max(1, Math.round(boxW * scale))
  const h = Math.max(1, Math.round(boxH * scale))
  const small = []
  for (let row = 0; row < h; row++) {
    const y0 = top + Math.floor(row / scale)
    const y1 = Math.max(y0 + 1, Math.min(bottom + 1, top + Math.floor((row + 1) / scale)))
    const line = []
    for (let col = 0; col < w; col++) {
      const x0 = left + Math.floor(col / scale)
      const x1 = Math.max(x0 + 1, Math.min(right + 1, left + Math.floor((col + 1) / scale)))
      let sum = 0
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) sum += grey[y * width + x]
      }
      line.push(sum / ((y1 - y0) * (x1 - x0)))
    }
    small.push(line)
  }
  // 3. 质心
  let mass = 0; let cy = 0; let cx = 0
  small.forEach((line, row) => line.forEach((value, col) => {
    mass += value; cy += value * (row + 0.5); cx += value * (col + 0.5)
  }))
  cy /= mass; cx /= mass
  // 4. 放进 28×28，让质心落在 (14, 14)（不超出图像边界）
  const clamp = (value, max) => Math.min(Math.max(value, 0), max)
  const dy = clamp(Math.round(14 - cy), 28 - h)
  const dx = clamp(Math.round(14 - cx), 28 - w)
  const image = Array.from({ length: 28 }, () => new Array(28).fill(0))
  small.forEach((line, row) => line.forEach((value, col) => { image[row + dy][col + dx] = value }))
  return image
}

function showPreview (image) {
  const preview = document.getElementById('preview').getContext('2d')
  const pixels = preview.createImageData(28, 28)
  image.flat().forEach((value, i) => {
    pixels.data.fill(Math.round(value * 255), 4 * i, 4 * i + 3)
    pixels.data[4 * i + 3] = 255
  })
  preview.putImageData(pixels, 0, 0)
}

// ---------------------------------------------------------------- 调用服务器并显示结果
function showProbabilities (probabilities) {
  list.replaceChildren()
  if (!probabilities) return
  const best = probabilities.indexOf(Math.max(...probabilities))
  probabilities.forEach((p, digit) => {
    const item = document.createElement('li')
    item.dataset.digit = digit
    item.dataset.probability = p
    if (digit === best) item.className = 'best'
    item.innerHTML = `<b>${digit}</b><span class="bar"><span></span></span><span>${p.toFixed(4)}</span>`
    item.querySelector('.bar span').style.width = `${(100 * p).toFixed(1)}%`
    list.appendChild(item)
  })
}

async function recognise (stroke) {
  const image = toMnist(greyPixels(), pad.width, pad.height)
  if (!image) return
  showPreview(image)
  window.lastImage = image // 测试从这里读出送给模型的 28×28 图像
  const server = document.getElementById('server').value.replace(/\/+$/, '')
  const url = `${server}/v1/models/${document.getElementById('model').value}:predict`
  const body = {
    signature_name: document.getElementById('signature').value,
    instances: [image.map(line => line.map(value => [value]))] // 形状 [1, 28, 28, 1]
  }
  let response, answer
  try {
    response = await fetch(url, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
    })
    answer = await response.json()
  } catch (error) {
    // 浏览器不告诉页面失败的原因：可能是服务器没有启动，也可能是服务器不允许跨源请求
    return showStatus(stroke, `无法访问 ${url}：请确认服务器已经启动，并且启动时加上了 ` +
      '--rest_api_enable_cors_support=true（浏览器的开发者工具中的“控制台”会给出具体原因）。', true)
  }
  if (stroke !== strokes) return // 又写了一笔，这个结果已经过时
  if (!response.ok) {
    return showStatus(stroke, `服务器返回错误（HTTP ${response.status}）：${answer.error}`, true)
  }
  const probabilities = answer.predictions[0]
  predictionBox.textContent = probabilities.indexOf(Math.max(...probabilities))
  showProbabilities(probabilities)
  showStatus(stroke, `第 ${stroke} 笔之后的识别结果。`, false)
}

function showStatus (stroke, text, isError) {
  statusLine.textContent = text
  statusLine.className = isError ? 'error' : ''
  statusLine.dataset.stroke = stroke // 测试用它判断结果是否对应最后一笔
}

clearPad()
